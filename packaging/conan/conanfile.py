# Conan 2 recipe for dhtkit (header-only).
#   conan create packaging/conan --version 0.1.0
import os

from conan import ConanFile
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.tools.files import copy


class DhtkitConan(ConanFile):
    name = "dhtkit"
    version = "0.1.0"
    license = "MIT"
    description = "Header-only C++20 building blocks for distributed hash tables"
    topics = ("dht", "consistent-hashing", "chord", "swim", "replication", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    exports_sources = "../../include/*", "../../cmake/*", "../../CMakeLists.txt", "../../LICENSE"
    no_copy_source = True

    def requirements(self):
        self.requires("asio/1.28.1")
        self.requires("cereal/1.3.2")

    def layout(self):
        cmake_layout(self)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.variables["DHTKIT_BUILD_TESTS"] = False
        tc.variables["DHTKIT_BUILD_EXAMPLES"] = False
        tc.variables["DHTKIT_BUILD_BENCH"] = False
        tc.generate()

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_id(self):
        self.info.clear()

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.requires = ["asio::asio", "cereal::cereal"]
        self.cpp_info.set_property("cmake_file_name", "dhtkit")
        self.cpp_info.set_property("cmake_target_name", "dhtkit::dhtkit")
