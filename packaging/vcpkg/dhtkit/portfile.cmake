# vcpkg port for dhtkit (header-only). Used as an overlay port:
#   vcpkg install dhtkit --overlay-ports=packaging/vcpkg
# DHTKIT_SOURCE_DIR may point at a local checkout; otherwise the port uses the
# tree it lives in.
if(NOT DEFINED DHTKIT_SOURCE_DIR)
  get_filename_component(DHTKIT_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
endif()

vcpkg_cmake_configure(
  SOURCE_PATH "${DHTKIT_SOURCE_DIR}"
  OPTIONS -DDHTKIT_BUILD_TESTS=OFF -DDHTKIT_BUILD_EXAMPLES=OFF -DDHTKIT_BUILD_BENCH=OFF)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH lib/cmake/dhtkit)

# Header-only: nothing in lib/ or debug/.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib")
vcpkg_install_copyright(FILE_LIST "${DHTKIT_SOURCE_DIR}/LICENSE")
