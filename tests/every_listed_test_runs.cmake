# Fails when the Catch2 tests CTest runs differ from the tests the binaries
# list. catch_discover_tests registers tests at build time (POST_BUILD) by
# splitting `--list-test-names-only` output as a CMake list, and runs each one
# with its name as a Catch2 test spec: a name with `;` is cut in two, an
# unbalanced `[` or `]` glues every later name onto one entry, and spec syntax
# (`\`, leading `~`, `*` at an end, ...) can select another test or none. Catch2
# 2.13 exits 0 when a spec matches nothing, so such tests silently never ran.
#
# This script therefore asks CTest what it would run (`ctest --show-only`),
# replays every Catch2 entry's own command line with --list-test-names-only so
# Catch2's parser says which tests that entry selects, and compares:
#   - every entry must select exactly the one test its name (minus the
#     "<binary>:" prefix) names;
#   - every test a binary lists (hidden ones aside: `--list-test-names-only`
#     without a spec lists non-hidden tests only) must be selected by exactly
#     one entry, and the [long] ones too when LONG_TESTS is on.
#
# Usage: cmake -D CTEST_COMMAND=<ctest> -D BUILD_DIR=<top build dir>
#              [-D LONG_TESTS=ON] -P every_listed_test_runs.cmake -- <test binaries...>
cmake_minimum_required(VERSION 3.20)

foreach(var CTEST_COMMAND BUILD_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "every_listed_test_runs: -D ${var}=... is required")
  endif()
endforeach()

# Test names are kept in CMake lists, where `;`, `\` and unbalanced brackets
# are syntax (the very bug this checks for), so they are percent-encoded while
# in a list and decoded only for printing.
function(encode out text)
  string(REPLACE "%" "%25" text "${text}")
  string(REPLACE ";" "%3B" text "${text}")
  string(REPLACE "\\" "%5C" text "${text}")
  string(REPLACE "[" "%5B" text "${text}")
  string(REPLACE "]" "%5D" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

function(decode out text)
  string(REPLACE "%5D" "]" text "${text}")
  string(REPLACE "%5B" "[" text "${text}")
  string(REPLACE "%5C" "\\" text "${text}")
  string(REPLACE "%3B" ";" text "${text}")
  string(REPLACE "%25" "%" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Runs `<args...> --list-test-names-only` and returns the encoded names. The
# arguments come encoded (one may hold a `;`) and are passed as bracket
# arguments, which CMake never splits.
function(list_selected out encoded_args)
  set(code "execute_process(COMMAND")
  foreach(arg IN LISTS encoded_args)
    decode(arg "${arg}")
    string(APPEND code " [=======[${arg}]=======]")
  endforeach()
  string(APPEND code " --list-test-names-only OUTPUT_VARIABLE output ERROR_VARIABLE error RESULT_VARIABLE result)")
  cmake_language(EVAL CODE "${code}")
  # Catch2 exits with the number of tests listed; only a failure to start is
  # an error here.
  if(NOT result MATCHES "^[0-9]+$")
    list(GET encoded_args 0 binary)
    decode(binary "${binary}")
    set(${out} "" PARENT_SCOPE)
    set(list_error "could not run ${binary}: ${result} ${error}" PARENT_SCOPE)
    return()
  endif()
  encode(output "${output}")
  string(REPLACE "\n" ";" lines "${output}")
  set(names)
  foreach(line IN LISTS lines)
    if(NOT line STREQUAL "")
      list(APPEND names "${line}")
    endif()
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
  set(list_error "" PARENT_SCOPE)
endfunction()

set(binaries)
set(after_dashes FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(after_dashes)
    list(APPEND binaries "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(after_dashes TRUE)
  endif()
endforeach()
if(NOT binaries)
  message(FATAL_ERROR "every_listed_test_runs: no test binaries given after --")
endif()

execute_process(
  COMMAND "${CTEST_COMMAND}" --test-dir "${BUILD_DIR}" --show-only=json-v1
  OUTPUT_VARIABLE json
  ERROR_VARIABLE ctest_error
  RESULT_VARIABLE ctest_result)
if(NOT ctest_result EQUAL 0)
  message(FATAL_ERROR "every_listed_test_runs: ctest --show-only failed (${ctest_result}):\n${ctest_error}")
endif()
string(JSON tests GET "${json}" tests)
string(JSON test_count LENGTH "${tests}")

# Problems are kept encoded too: their text quotes test names.
set(problems)
function(problem text)
  encode(text "${text}")
  set(problems ${problems} "${text}" PARENT_SCOPE)
endfunction()

# Group CTest's entries by the binary they run.
foreach(binary IN LISTS binaries)
  get_filename_component(binary_name "${binary}" NAME)
  string(MAKE_C_IDENTIFIER "${binary_name}" id)
  set(entries_${id})
endforeach()
if(test_count GREATER 0)
  math(EXPR last "${test_count} - 1")
  foreach(i RANGE ${last})
    string(JSON test GET "${tests}" ${i})
    string(JSON name GET "${test}" name)
    string(JSON argc ERROR_VARIABLE no_command LENGTH "${test}" command)
    if(no_command OR argc EQUAL 0)
      # catch_discover_tests adds <target>_NOT_BUILT-<hash> when discovery
      # never ran; the binary's tests are then reported as never run below.
      if(name MATCHES "_NOT_BUILT-")
        problem("registered but not discovered (binary not built?): ${name}")
      endif()
      continue()
    endif()
    string(JSON program GET "${test}" command 0)
    foreach(binary IN LISTS binaries)
      if(program STREQUAL binary)
        get_filename_component(binary_name "${binary}" NAME)
        string(MAKE_C_IDENTIFIER "${binary_name}" id)
        list(APPEND entries_${id} ${i})
        break()
      endif()
    endforeach()
  endforeach()
endif()

set(checked 0)
set(never_run 0)
foreach(binary IN LISTS binaries)
  get_filename_component(binary_name "${binary}" NAME)
  string(MAKE_C_IDENTIFIER "${binary_name}" id)
  encode(encoded_binary "${binary}")

  list_selected(expected "${encoded_binary}")
  if(list_error)
    problem("${list_error}")
    continue()
  endif()
  set(expected_long)
  if(LONG_TESTS)
    list_selected(expected_long "${encoded_binary};%5Blong%5D")
  endif()

  set(run)
  set(run_long)
  foreach(i IN LISTS entries_${id})
    string(JSON test GET "${tests}" ${i})
    string(JSON name GET "${test}" name)
    string(JSON argc LENGTH "${test}" command)
    math(EXPR last_arg "${argc} - 1")
    set(args)
    foreach(k RANGE ${last_arg})
      string(JSON arg GET "${test}" command ${k})
      encode(arg "${arg}")
      list(APPEND args "${arg}")
    endforeach()
    list_selected(selected "${args}")
    math(EXPR checked "${checked} + 1")

    # The registered name is "<binary>:<test>" or "<binary>:long:<test>".
    set(is_long FALSE)
    string(FIND "${name}" "${binary_name}:long:" at)
    if(at EQUAL 0)
      set(is_long TRUE)
      string(LENGTH "${binary_name}:long:" prefix_length)
    else()
      string(FIND "${name}" "${binary_name}:" at)
      string(LENGTH "${binary_name}:" prefix_length)
    endif()
    if(NOT at EQUAL 0)
      problem("registered name lacks the '${binary_name}:' prefix: ${name}")
      continue()
    endif()
    string(SUBSTRING "${name}" ${prefix_length} -1 stripped)
    encode(encoded_stripped "${stripped}")

    list(LENGTH selected selected_count)
    if(selected_count EQUAL 0)
      problem("registered but runs no test (its spec matches nothing): ${name}")
    elseif(NOT selected STREQUAL encoded_stripped)
      list(JOIN selected "' and '" shown)
      decode(shown "${shown}")
      problem("registered as '${name}' but runs '${shown}'")
    endif()
    if(is_long)
      list(APPEND run_long ${selected})
    else()
      list(APPEND run ${selected})
    endif()
  endforeach()

  foreach(kind "" "_long")
    set(label "")
    if(kind STREQUAL "_long")
      set(label "[long] ")
    endif()
    foreach(test IN LISTS expected${kind})
      list(FIND run${kind} "${test}" found)
      decode(shown "${test}")
      if(found EQUAL -1)
        math(EXPR never_run "${never_run} + 1")
        problem("listed by ${binary_name} but never run by ctest: ${label}${shown}")
      else()
        # A test run by two entries means two names select it.
        list(REMOVE_AT run${kind} ${found})
        list(FIND run${kind} "${test}" again)
        if(NOT again EQUAL -1)
          problem("run by more than one ctest entry: ${binary_name}: ${label}${shown}")
        endif()
        list(REMOVE_ITEM run${kind} "${test}")
      endif()
    endforeach()
    foreach(test IN LISTS run${kind})
      decode(shown "${test}")
      problem("run by ctest but not listed by ${binary_name}: ${label}${shown}")
    endforeach()
  endforeach()
endforeach()

list(LENGTH binaries binary_count)
list(LENGTH problems problem_count)
if(problem_count GREATER 0)
  set(report)
  foreach(text IN LISTS problems)
    decode(text "${text}")
    string(APPEND report "  ${text}\n")
  endforeach()
  message(FATAL_ERROR
    "every_listed_test_runs: ${problem_count} difference(s) between what ctest runs and what "
    "${binary_count} test binaries list (${checked} ctest entries replayed, ${never_run} listed tests "
    "never run):\n${report}")
endif()
message(STATUS "every_listed_test_runs: ${checked} ctest entries each run exactly their one test; "
               "every test the ${binary_count} binaries list is run")
