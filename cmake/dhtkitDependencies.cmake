# Finds dhtkit's dependencies: standalone Asio and cereal.
#
# Used both by dhtkit's own build and by the installed dhtkitConfig.cmake, so a
# consumer finds the same targets dhtkit was built against.
#
# Asio: vcpkg and Conan ship a CMake config with the target asio::asio; Debian's
# libasio-dev ships only headers. Try the config first, then fall back to
# locating asio.hpp and making an equivalent imported target.

include(CMakeFindDependencyMacro)

# Inside an installed package config, a missing dependency must make
# find_package(dhtkit) fail politely (find_dependency); in dhtkit's own build it
# is a hard error.
macro(_dhtkit_require)
  if(CMAKE_FIND_PACKAGE_NAME)
    find_dependency(${ARGN})
  else()
    find_package(${ARGN} REQUIRED)
  endif()
endmacro()

macro(dhtkit_find_dependencies)
  if(NOT TARGET asio::asio)
    find_package(asio CONFIG QUIET)
  endif()
  if(NOT TARGET asio::asio)
    find_path(
      DHTKIT_ASIO_INCLUDE_DIR
      NAMES asio.hpp
      DOC "Directory containing standalone Asio's asio.hpp")
    if(NOT DHTKIT_ASIO_INCLUDE_DIR)
      message(FATAL_ERROR "dhtkit: standalone Asio not found. Install it (Debian: apt-get install libasio-dev) "
                          "or point DHTKIT_ASIO_INCLUDE_DIR at the folder holding asio.hpp.")
    endif()
    set(THREADS_PREFER_PTHREAD_FLAG ON)
    _dhtkit_require(Threads)
    add_library(asio::asio INTERFACE IMPORTED)
    set_target_properties(
      asio::asio
      PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${DHTKIT_ASIO_INCLUDE_DIR}"
                 INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;ASIO_NO_DEPRECATED"
                 INTERFACE_LINK_LIBRARIES Threads::Threads)
  endif()

  if(NOT TARGET cereal::cereal)
    _dhtkit_require(cereal CONFIG)
  endif()
endmacro()
