# ctest package:vcpkg_overlay_tracks_sources (needs no vcpkg): the overlay
# port's portfile must change whenever an installed source changes and stay
# byte for byte the same when nothing does, because vcpkg keys its binary cache
# on the portfile. A portfile that missed an edit would restore stale headers.
#
#   cmake -DSOURCE_DIR=<dhtkit checkout> -DWORK_DIR=<scratch dir> -P test-overlay-tracks-sources.cmake
cmake_minimum_required(VERSION 3.20)

foreach(var SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "pass -D${var}=...")
  endif()
endforeach()

# A copy of what the port archives, so the test edits files without touching
# the checkout.
set(src "${WORK_DIR}/src")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${src}")
file(COPY "${SOURCE_DIR}/include" "${SOURCE_DIR}/cmake" "${SOURCE_DIR}/CMakeLists.txt" "${SOURCE_DIR}/LICENSE"
     DESTINATION "${src}")

set(generation 0)
# Runs the generator from WORK_DIR with a relative OUT, as a user in another
# folder would, and returns the portfile's text.
function(generate out_var)
  math(EXPR n "${generation} + 1")
  set(generation ${n} PARENT_SCOPE)
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -DMODE=overlay "-DSOURCE_DIR=${src}" -DOUT=overlay -P
            "${CMAKE_CURRENT_LIST_DIR}/make-port.cmake"
    WORKING_DIRECTORY "${WORK_DIR}"
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "generation ${n} failed:\n${out}")
  endif()
  set(port "${WORK_DIR}/overlay/dhtkit")
  file(READ "${port}/portfile.cmake" portfile)
  # The hash the portfile checks must be the archive's, or vcpkg would refuse it.
  file(SHA512 "${port}/dhtkit-src.tar" actual)
  string(FIND "${portfile}" "\"${actual}\"" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "generation ${n}: the portfile does not hold the archive's SHA512 ${actual}")
  endif()
  set(${out_var} "${portfile}" PARENT_SCOPE)
endfunction()

function(expect_same a b what)
  if(NOT a STREQUAL b)
    message(FATAL_ERROR "portfile changed after ${what}")
  endif()
  message(STATUS "unchanged after ${what}")
endfunction()

function(expect_changed a b what)
  if(a STREQUAL b)
    message(FATAL_ERROR "portfile did not change after ${what}")
  endif()
  message(STATUS "changed after ${what}")
endfunction()

set(header "${src}/include/dhtkit/dhtkit.hpp")
file(READ "${header}" original)

generate(first)
generate(again)
expect_same("${first}" "${again}" "a second run with nothing edited")

# Only the contents count: another timestamp must not force a rebuild. The
# mtime is set to a fixed past date (POSIX touch -t), not waited for.
file(TIMESTAMP "${header}" before "%s" UTC)
execute_process(COMMAND touch -t 200001010000 "${header}" RESULT_VARIABLE rc)
file(TIMESTAMP "${header}" after "%s" UTC)
if(NOT rc EQUAL 0 OR before STREQUAL after)
  message(FATAL_ERROR "could not change the header's mtime (touch -t: ${rc}; ${before} -> ${after})")
endif()
generate(touched)
expect_same("${first}" "${touched}" "touching a header")

file(APPEND "${header}" "// edited\n")
generate(edited)
expect_changed("${first}" "${edited}" "editing include/dhtkit/dhtkit.hpp")

file(WRITE "${header}" "${original}")
generate(restored)
expect_same("${first}" "${restored}" "restoring the header")

file(WRITE "${src}/include/dhtkit/new_header.hpp" "#pragma once\n")
generate(added)
expect_changed("${first}" "${added}" "adding a header")
file(REMOVE "${src}/include/dhtkit/new_header.hpp")

file(APPEND "${src}/cmake/dhtkitDependencies.cmake" "# edited\n")
generate(cmake_edited)
expect_changed("${first}" "${cmake_edited}" "editing cmake/dhtkitDependencies.cmake")
