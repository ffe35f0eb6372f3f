# The API reference: `cmake --build <dir> --target docs` runs Doxygen over the
# public headers (include/dhtkit, without detail/) and docs/api/*.md, and writes
# HTML to <dir>/docs/api/html (index.html is the entry point). Not part of ALL:
# a plain build never needs Doxygen. Without Doxygen there is no `docs` target.
#
# Doxygen runs with WARN_AS_ERROR = FAIL_ON_WARNINGS, so a broken reference
# (a bad command, a link to nothing, a parameter that does not exist) fails the
# target, and so does a public type, alias or header without a brief
# (docs/api/check_briefs.cmake); the ctest entry docs:api_reference builds it.
find_package(Doxygen QUIET)
if(NOT DOXYGEN_FOUND)
  message(STATUS "dhtkit: Doxygen not found, no `docs` target (Debian: doxygen)")
  return()
endif()

set(DHTKIT_DOCS_DIR "${PROJECT_BINARY_DIR}/docs/api")
configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in" "${PROJECT_BINARY_DIR}/docs/Doxyfile" @ONLY)

# A custom target always runs, so the reference never lags the headers. The
# output directory is emptied first so that pages of a removed header do not
# linger in it.
add_custom_target(
  docs
  COMMAND ${CMAKE_COMMAND} -E rm -rf "${DHTKIT_DOCS_DIR}"
  COMMAND ${CMAKE_COMMAND} -E make_directory "${DHTKIT_DOCS_DIR}"
  COMMAND Doxygen::doxygen "${PROJECT_BINARY_DIR}/docs/Doxyfile"
  COMMAND ${CMAKE_COMMAND} -D "XML_DIR=${DHTKIT_DOCS_DIR}/xml" -D
          "PENDING_FILE=${PROJECT_SOURCE_DIR}/docs/api/briefs_pending.txt" -P
          "${PROJECT_SOURCE_DIR}/docs/api/check_briefs.cmake"
  COMMAND ${CMAKE_COMMAND} -E echo "dhtkit: API reference in ${DHTKIT_DOCS_DIR}/html/index.html"
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
  COMMENT "Doxygen: API reference from the public headers"
  VERBATIM)

if(DHTKIT_BUILD_TESTS)
  # Builds the reference as a user would, through the build tool, so the test
  # covers the target and not a second copy of its command line. Its output
  # directory is its own; the lock is for the build tree: two build-tool runs in
  # one tree at once (a later test that also builds here, under ctest -j) can
  # corrupt the build tool's logs, so any such test should take the same lock.
  add_test(NAME docs:api_reference COMMAND ${CMAKE_COMMAND} --build "${PROJECT_BINARY_DIR}" --target docs)
  set_tests_properties(docs:api_reference PROPERTIES RESOURCE_LOCK dhtkit_build_tree TIMEOUT 300)
endif()
