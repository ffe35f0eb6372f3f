# Conan 2 recipe for dhtkit (header-only).
#   conan create packaging/conan
# Consumers then use CMakeDeps: find_package(dhtkit CONFIG REQUIRED) and
# target_link_libraries(app PRIVATE dhtkit::dhtkit), exactly as with the
# CMake-installed package.
import os

from conan import ConanFile
from conan.tools.files import copy


class DhtkitConan(ConanFile):
    name = "dhtkit"
    version = "0.1.0"
    license = "MIT"
    description = "Header-only C++20 building blocks for distributed hash tables"
    topics = ("dht", "consistent-hashing", "chord", "swim", "replication", "header-only")
    package_type = "header-library"
    no_copy_source = True

    def export_sources(self):
        # The recipe lives two folders below the project root.
        root = os.path.join(self.recipe_folder, "..", "..")
        copy(self, "include/*", root, self.export_sources_folder)
        copy(self, "LICENSE", root, self.export_sources_folder)

    def requirements(self):
        self.requires("asio/1.28.1")
        self.requires("cereal/1.3.2")

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_id(self):
        self.info.clear()

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.requires = ["asio::asio", "cereal::cereal"]
        self.cpp_info.defines = ["ASIO_STANDALONE", "ASIO_NO_DEPRECATED"]
        self.cpp_info.set_property("cmake_file_name", "dhtkit")
        self.cpp_info.set_property("cmake_target_name", "dhtkit::dhtkit")
