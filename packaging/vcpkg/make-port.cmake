# Writes a vcpkg port for dhtkit from the templates in port/.
#
#   Local development (overlay port from a working tree):
#     cmake -DMODE=overlay [-DSOURCE_DIR=<checkout>] [-DOUT=<dir>] -P packaging/vcpkg/make-port.cmake
#     vcpkg install dhtkit --overlay-ports=<dir>
#   SOURCE_DIR defaults to the checkout holding this script, OUT to
#   <SOURCE_DIR>/build/vcpkg-overlay. The port carries a deterministic tarball of
#   include/ cmake/ CMakeLists.txt LICENSE and that tarball's SHA512, so any edit
#   changes the portfile and vcpkg's ABI hash; rerun after every edit.
#
#   Release (registry port taking the tag's GitHub archive):
#     cmake -DMODE=registry -DTAG=v<version> [-DARCHIVE=<file>] [-DSOURCE_DIR=<git checkout>]
#           [-DOUT=<dir>] -P packaging/vcpkg/make-port.cmake
#   With ARCHIVE (the archive GitHub serves for the tag), its SHA512 goes into the
#   portfile. Without it the archive is rebuilt from the tag with
#   `git archive --format=tar | gzip -n`, which is how GitHub makes it today but
#   not something GitHub promises: check the published archive with `vcpkg hash`
#   before a registry pull request. OUT defaults to
#   <SOURCE_DIR>/build/vcpkg-registry.
#
# Relative paths are taken from the current directory and made absolute, so the
# script runs from any folder.
cmake_minimum_required(VERSION 3.20)

set(port_templates "${CMAKE_CURRENT_LIST_DIR}/port")

if(NOT MODE STREQUAL "overlay" AND NOT MODE STREQUAL "registry")
  message(FATAL_ERROR "make-port.cmake: pass -DMODE=overlay or -DMODE=registry (before -P)")
endif()

if(NOT DEFINED SOURCE_DIR)
  set(SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/../..")
endif()
get_filename_component(SOURCE_DIR "${SOURCE_DIR}" ABSOLUTE)
if(NOT DEFINED OUT)
  set(OUT "${SOURCE_DIR}/build/vcpkg-${MODE}")
endif()
get_filename_component(OUT "${OUT}" ABSOLUTE)
set(port_dir "${OUT}/dhtkit")

# Reads version, description and home from a project(dhtkit ...) call: the one
# place the build and every package recipe take them from.
function(dhtkit_read_project cmakelists_text prefix)
  if(NOT cmakelists_text MATCHES "project\\(([^)]*)\\)")
    message(FATAL_ERROR "make-port.cmake: no project() call in CMakeLists.txt")
  endif()
  set(args "${CMAKE_MATCH_1}")
  if(NOT args MATCHES "^[ \t\r\n]*dhtkit[ \t\r\n]")
    message(FATAL_ERROR "make-port.cmake: CMakeLists.txt is not dhtkit's")
  endif()
  foreach(key VERSION DESCRIPTION HOMEPAGE_URL)
    # if() evaluates every MATCHES before any OR, so CMAKE_MATCH_1 would come
    # from the last one; the quoted and the bare form are tried in turn.
    if(args MATCHES "${key}[ \t\r\n]+\"([^\"]*)\"")
      set(${prefix}_${key} "${CMAKE_MATCH_1}" PARENT_SCOPE)
    elseif(args MATCHES "${key}[ \t\r\n]+([^ \t\r\n\"]+)")
      set(${prefix}_${key} "${CMAKE_MATCH_1}" PARENT_SCOPE)
    else()
      message(FATAL_ERROR "make-port.cmake: project(dhtkit) has no ${key}")
    endif()
  endforeach()
endfunction()

function(dhtkit_json_escape var)
  string(REPLACE "\\" "\\\\" value "${${var}}")
  string(REPLACE "\"" "\\\"" value "${value}")
  set(${var} "${value}" PARENT_SCOPE)
endfunction()

# Writes only when the content changes, so an unchanged port keeps its files'
# timestamps as well as their bytes.
function(dhtkit_write_if_different path content)
  if(EXISTS "${path}")
    file(READ "${path}" old)
    if(old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE "${path}" "${content}")
endfunction()

function(dhtkit_write_port kind source_block)
  set(DHTKIT_PORT_KIND "${kind}")
  string(CONFIGURE "${source_block}" DHTKIT_PORT_SOURCE @ONLY)
  file(READ "${port_templates}/portfile.cmake.in" text)
  string(CONFIGURE "${text}" text @ONLY)
  dhtkit_write_if_different("${port_dir}/portfile.cmake" "${text}")

  set(DHTKIT_VERSION "${project_VERSION}")
  set(DHTKIT_DESCRIPTION "${project_DESCRIPTION}")
  set(DHTKIT_HOMEPAGE "${project_HOMEPAGE_URL}")
  dhtkit_json_escape(DHTKIT_DESCRIPTION)
  dhtkit_json_escape(DHTKIT_HOMEPAGE)
  file(READ "${port_templates}/vcpkg.json.in" text)
  string(CONFIGURE "${text}" text @ONLY)
  dhtkit_write_if_different("${port_dir}/vcpkg.json" "${text}")

  file(READ "${port_templates}/usage" text)
  dhtkit_write_if_different("${port_dir}/usage" "${text}")
endfunction()

file(MAKE_DIRECTORY "${port_dir}")

if(MODE STREQUAL "overlay")
  if(NOT EXISTS "${SOURCE_DIR}/CMakeLists.txt")
    message(FATAL_ERROR "make-port.cmake: ${SOURCE_DIR} has no CMakeLists.txt")
  endif()
  file(READ "${SOURCE_DIR}/CMakeLists.txt" cmakelists)
  dhtkit_read_project("${cmakelists}" project)

  # What `cmake --install` of the library reads. Sorted (GLOB_RECURSE sorts), a
  # fixed mtime and the gnutar format (no atime/ctime) keep the archive's bytes,
  # and so its hash, a function of the files' contents, names and modes.
  file(
    GLOB_RECURSE members
    RELATIVE "${SOURCE_DIR}"
    LIST_DIRECTORIES false
    "${SOURCE_DIR}/include/*" "${SOURCE_DIR}/cmake/*")
  list(APPEND members CMakeLists.txt LICENSE)
  list(SORT members)
  string(REPLACE ";" "\n" member_lines "${members}")
  set(member_list "${port_dir}/dhtkit-src.files")
  file(WRITE "${member_list}" "${member_lines}\n")
  set(archive "${port_dir}/dhtkit-src.tar")
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -E tar cf "${archive}.tmp" --format=gnutar "--mtime=1970-01-01 00:00:00 UTC"
            "--files-from=${member_list}"
    WORKING_DIRECTORY "${SOURCE_DIR}"
    RESULT_VARIABLE rc)
  file(REMOVE "${member_list}")
  if(NOT rc EQUAL 0)
    file(REMOVE "${archive}.tmp")
    message(FATAL_ERROR "make-port.cmake: could not archive ${SOURCE_DIR}")
  endif()
  file(SHA512 "${archive}.tmp" DHTKIT_ARCHIVE_SHA512)
  if(EXISTS "${archive}")
    file(SHA512 "${archive}" old_sha512)
  endif()
  if(DHTKIT_ARCHIVE_SHA512 STREQUAL old_sha512)
    file(REMOVE "${archive}.tmp")
  else()
    file(RENAME "${archive}.tmp" "${archive}")
  endif()

  set(DHTKIT_SOURCE_DIR "${SOURCE_DIR}")
  file(READ "${port_templates}/source-overlay.cmake.in" source_block)
  dhtkit_write_port(overlay "${source_block}")
  list(LENGTH members member_count)
  message(STATUS "dhtkit overlay port: ${port_dir} (${member_count} files, SHA512 ${DHTKIT_ARCHIVE_SHA512})")
  message(STATUS "install with: vcpkg install dhtkit --overlay-ports=${OUT}")
  return()
endif()

# MODE registry
if(NOT DEFINED TAG OR NOT TAG MATCHES "^v([0-9]+\\.[0-9]+\\.[0-9]+)$")
  message(FATAL_ERROR "make-port.cmake: pass -DTAG=v<major>.<minor>.<patch>, the release tag")
endif()
set(tag_version "${CMAKE_MATCH_1}")

# vcpkg_from_github names its download <owner>-<repo>-<ref>.tar.gz; GitHub's
# archive holds one folder <repo>-<tag without its leading v>.
file(READ "${SOURCE_DIR}/CMakeLists.txt" cmakelists)
dhtkit_read_project("${cmakelists}" working_tree)
if(NOT working_tree_HOMEPAGE_URL MATCHES "^https://github\\.com/([^/]+)/([^/]+)$")
  message(FATAL_ERROR "make-port.cmake: HOMEPAGE_URL ${working_tree_HOMEPAGE_URL} is not a GitHub repository")
endif()
set(owner "${CMAKE_MATCH_1}")
set(repo "${CMAKE_MATCH_2}")
set(DHTKIT_GITHUB_REPO "${owner}/${repo}")
set(download_name "${owner}-${repo}-${TAG}.tar.gz")
set(archive_top "${repo}-${tag_version}")
set(scratch "${OUT}/.make-port")
file(REMOVE_RECURSE "${scratch}")
file(MAKE_DIRECTORY "${scratch}")

if(DEFINED ARCHIVE)
  get_filename_component(ARCHIVE "${ARCHIVE}" ABSOLUTE)
  if(NOT EXISTS "${ARCHIVE}")
    message(FATAL_ERROR "make-port.cmake: ${ARCHIVE} does not exist")
  endif()
  set(archive "${ARCHIVE}")
else()
  find_package(Git QUIET)
  find_program(GZIP_EXECUTABLE gzip)
  if(NOT GIT_EXECUTABLE OR NOT GZIP_EXECUTABLE)
    message(FATAL_ERROR "make-port.cmake: rebuilding the tag's archive needs git and gzip; "
                        "or pass -DARCHIVE=<the archive GitHub serves for ${TAG}>")
  endif()
  set(archive "${OUT}/${download_name}")
  execute_process(
    COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" archive --format=tar "--prefix=${archive_top}/" "${TAG}"
    COMMAND "${GZIP_EXECUTABLE}" -n
    OUTPUT_FILE "${archive}"
    RESULTS_VARIABLE rcs)
  if(NOT rcs STREQUAL "0;0")
    file(REMOVE "${archive}")
    message(FATAL_ERROR "make-port.cmake: git archive of ${TAG} in ${SOURCE_DIR} failed (${rcs})")
  endif()
endif()

# The port's version is the tag's; the tagged CMakeLists.txt must agree, or the
# installed dhtkitConfigVersion.cmake would report another version.
file(ARCHIVE_EXTRACT INPUT "${archive}" DESTINATION "${scratch}" PATTERNS "${archive_top}/CMakeLists.txt")
if(NOT EXISTS "${scratch}/${archive_top}/CMakeLists.txt")
  message(FATAL_ERROR "make-port.cmake: ${archive} has no ${archive_top}/CMakeLists.txt; is it ${TAG}'s archive?")
endif()
file(READ "${scratch}/${archive_top}/CMakeLists.txt" tagged_cmakelists)
file(REMOVE_RECURSE "${scratch}")
dhtkit_read_project("${tagged_cmakelists}" project)
if(NOT project_VERSION STREQUAL tag_version)
  message(FATAL_ERROR "make-port.cmake: ${TAG} holds project(dhtkit VERSION ${project_VERSION})")
endif()

file(SHA512 "${archive}" DHTKIT_ARCHIVE_SHA512)
file(READ "${port_templates}/source-registry.cmake.in" source_block)
dhtkit_write_port(registry "${source_block}")
message(STATUS "dhtkit registry port: ${port_dir} (${TAG}, SHA512 ${DHTKIT_ARCHIVE_SHA512})")
message(STATUS "archive hashed: ${archive}")
message(STATUS "vcpkg_from_github looks for it in its downloads folder as ${download_name}")
if(NOT DEFINED ARCHIVE)
  message(STATUS "rebuilt from git: check GitHub's archive for ${TAG} with `vcpkg hash` before a registry pull request")
endif()
