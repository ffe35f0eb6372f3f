# Conan 2 recipe for dhtkit (header-only).
#   conan create packaging/conan -s compiler.cppstd=20
# Consumers then use CMakeDeps: find_package(dhtkit CONFIG REQUIRED) and
# target_link_libraries(app PRIVATE dhtkit::dhtkit), exactly as with the
# CMake-installed package.
import os
import re

from conan import ConanFile
from conan.errors import ConanException
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"

# The recipe lives two folders below the project root.
_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def _project_fields():
    """VERSION, DESCRIPTION and HOMEPAGE_URL of project(dhtkit ...) in the top
    CMakeLists.txt, so the package never disagrees with the CMake build.

    In the source tree the file is two folders up; in the Conan cache it is the
    copy export() puts next to this recipe. Values must be literals: a variable
    would need CMake to evaluate it, so it is refused rather than guessed."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(here, "CMakeLists.txt"), os.path.join(_ROOT, "CMakeLists.txt")):
        if os.path.isfile(path):
            break
    else:
        raise ConanException("dhtkit recipe: the project's CMakeLists.txt is neither next to the "
                             "recipe nor two folders up")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    call = re.search(r"^\s*project\s*\(", text, re.MULTILINE | re.IGNORECASE)
    if not call:
        raise ConanException(f"dhtkit recipe: no project() call in {path}")
    # CMake arguments: quoted strings (which may hold parentheses) or bare words.
    args = []
    for token in re.finditer(r'"((?:[^"\\]|\\.)*)"|([^\s()"#]+)|(\))|(#[^\n]*)', text[call.end():]):
        quoted, bare, close, _comment = token.groups()
        if close:
            break
        if quoted is not None:
            args.append(quoted)
        elif bare is not None:
            args.append(bare)
    if not args or args[0] != "dhtkit":
        raise ConanException(f"dhtkit recipe: the first project() in {path} is not project(dhtkit ...)")
    fields = {}
    for key in ("VERSION", "DESCRIPTION", "HOMEPAGE_URL"):
        if key not in args or args.index(key) + 1 >= len(args):
            raise ConanException(f"dhtkit recipe: project(dhtkit) in {path} has no {key}")
        value = args[args.index(key) + 1]
        if "${" in value:
            raise ConanException(f"dhtkit recipe: project(dhtkit {key}) in {path} is not a literal: {value}")
        fields[key] = value
    if not re.fullmatch(r"[0-9]+(\.[0-9]+){0,3}", fields["VERSION"]):
        raise ConanException(f"dhtkit recipe: project(dhtkit VERSION) is not a version: {fields['VERSION']}")
    return fields


_PROJECT = _project_fields()


class DhtkitConan(ConanFile):
    name = "dhtkit"
    description = _PROJECT["DESCRIPTION"]
    license = "MIT"
    # ConanCenter's convention: url is where the recipe is maintained, homepage
    # the project's own page. This recipe is maintained with the project.
    url = _PROJECT["HOMEPAGE_URL"]
    homepage = _PROJECT["HOMEPAGE_URL"]
    topics = ("dht", "distributed-hash-table", "consistent-hashing", "chord", "swim", "gossip",
              "replication", "vector-clock", "asio", "header-only")
    package_type = "header-library"
    # Only validate() reads the settings: package_id() clears them, so one
    # package serves every configuration.
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True

    def set_version(self):
        # An explicit --version must agree with the CMake project, or the
        # package would carry a version its own dhtkitConfigVersion denies.
        if self.version and str(self.version) != _PROJECT["VERSION"]:
            raise ConanException(f"dhtkit recipe: --version {self.version} differs from "
                                 f"project(dhtkit VERSION {_PROJECT['VERSION']}) in CMakeLists.txt")
        self.version = _PROJECT["VERSION"]

    def export(self):
        # The cache has no project tree around the recipe: keep the file the
        # metadata above is read from.
        copy(self, "CMakeLists.txt", _ROOT, self.export_folder)

    def export_sources(self):
        copy(self, "include/*", _ROOT, self.export_sources_folder)
        copy(self, "LICENSE", _ROOT, self.export_sources_folder)

    def layout(self):
        basic_layout(self)

    def requirements(self):
        # dhtkit's public headers include both, so both are transitive.
        self.requires("asio/1.28.1")
        self.requires("cereal/1.3.2")

    def package_id(self):
        self.info.clear()

    def validate(self):
        # Concepts, std::span and <=> throughout the headers: a C++17 consumer
        # would otherwise fail deep inside them ('concept' does not name a type).
        check_min_cppstd(self, 20)

    def build(self):
        pass

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        # The whole tree, not a list of extensions: a header of another kind
        # (.ipp, .inl) must not be dropped silently.
        copy(self, "*", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.requires = ["asio::asio", "cereal::cereal"]
        # The same definitions the CMake package puts on dhtkit::dhtkit, so a
        # consumer compiles the same code whichever channel delivered dhtkit.
        self.cpp_info.defines = ["ASIO_STANDALONE", "ASIO_NO_DEPRECATED"]
        self.cpp_info.set_property("cmake_file_name", "dhtkit")
        self.cpp_info.set_property("cmake_target_name", "dhtkit::dhtkit")
