# Fails unless every public type and header in the API reference has a brief.
#
# Doxygen can only warn about undocumented entities all at once (every member
# function and field too, hundreds of them here), so the reference runs with
# WARN_IF_UNDOCUMENTED = NO and this script enforces the part that matters:
# each file, namespace, class, struct, union and concept, each enum, and each
# type alias at namespace scope has a brief. It reads Doxygen's XML output.
# The detail namespaces and the std specializations are not public and are
# skipped (the Doxyfile excludes them too).
#
# PENDING_FILE (docs/api/briefs_pending.txt) lists entities known to lack a
# brief, one per line ("struct dhtkit::cache::keep"): they are reported, not
# failed, and an entry that has gained a brief must leave the list, so the list
# only shrinks.
#
# Usage: cmake -D XML_DIR=<doxygen xml dir> [-D PENDING_FILE=<file>] -P check_briefs.cmake
cmake_minimum_required(VERSION 3.20)

if(NOT DEFINED XML_DIR OR NOT EXISTS "${XML_DIR}/index.xml")
  message(FATAL_ERROR "check_briefs: -D XML_DIR=<dir holding Doxygen's index.xml> is required")
endif()

# Doxygen writes the entities &lt; &gt; &amp;, whose ';' CMake would take for a
# list separator.
function(read_xml out path)
  file(READ "${path}" text)
  string(REPLACE ";" "%3B" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

function(readable out text)
  string(REPLACE "%3B" ";" text "${text}")
  string(REPLACE "&lt;" "<" text "${text}")
  string(REPLACE "&gt;" ">" text "${text}")
  string(REPLACE "&amp;" "&" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# TRUE if the first <briefdescription> in `text` holds any text.
function(has_brief out text)
  string(FIND "${text}" "<briefdescription>" begin)
  string(FIND "${text}" "</briefdescription>" end)
  if(begin EQUAL -1 OR end LESS begin)
    set(${out} FALSE PARENT_SCOPE)
    return()
  endif()
  math(EXPR begin "${begin} + 18")
  math(EXPR length "${end} - ${begin}")
  string(SUBSTRING "${text}" ${begin} ${length} brief)
  string(REGEX REPLACE "<[^>]*>" "" brief "${brief}")
  string(STRIP "${brief}" brief)
  if(brief STREQUAL "")
    set(${out} FALSE PARENT_SCOPE)
  else()
    set(${out} TRUE PARENT_SCOPE)
  endif()
endfunction()

function(is_public out name)
  if(name MATCHES "(^|::)detail(::|$)" OR name MATCHES "^std::")
    set(${out} FALSE PARENT_SCOPE)
  else()
    set(${out} TRUE PARENT_SCOPE)
  endif()
endfunction()

set(PENDING)
if(DEFINED PENDING_FILE)
  file(STRINGS "${PENDING_FILE}" lines)
  foreach(line IN LISTS lines)
    string(STRIP "${line}" line)
    if(NOT line STREQUAL "" AND NOT line MATCHES "^#")
      list(APPEND PENDING "${line}")
    endif()
  endforeach()
endif()

read_xml(index "${XML_DIR}/index.xml")
string(REGEX MATCHALL "<compound refid=\"[^\"]+\" kind=\"[a-z]+\"><name>[^<]+</name>" compounds "${index}")

set(missing)
set(checked 0)
foreach(compound IN LISTS compounds)
  string(REGEX REPLACE "^<compound refid=\"([^\"]+)\" kind=\"([a-z]+)\"><name>([^<]+)</name>$" "\\1" refid
                       "${compound}")
  string(REGEX REPLACE "^<compound refid=\"([^\"]+)\" kind=\"([a-z]+)\"><name>([^<]+)</name>$" "\\2" kind
                       "${compound}")
  string(REGEX REPLACE "^<compound refid=\"([^\"]+)\" kind=\"([a-z]+)\"><name>([^<]+)</name>$" "\\3" name
                       "${compound}")
  readable(name "${name}")
  if(NOT kind MATCHES "^(file|namespace|class|struct|union|concept)$" OR name MATCHES "\\.md$")
    continue()
  endif()
  is_public(public "${name}")
  if(NOT public)
    continue()
  endif()
  read_xml(text "${XML_DIR}/${refid}.xml")
  # Private nested types are in the XML but not in the reference.
  if(text MATCHES "<compounddef [^>]*prot=\"(private|protected)\"")
    continue()
  endif()

  # The compound's own brief follows its members' sections (compound.xsd).
  string(FIND "${text}" "</sectiondef>" after_members REVERSE)
  if(after_members EQUAL -1)
    string(FIND "${text}" "</compoundname>" after_members)
  endif()
  string(SUBSTRING "${text}" ${after_members} -1 own)
  has_brief(ok "${own}")
  math(EXPR checked "${checked} + 1")
  if(NOT ok)
    list(APPEND missing "${kind} ${name}")
  endif()

  # Enums wherever they are declared; type aliases where they name a type of
  # the library (namespace scope), not a class's member types.
  set(member_kinds "enum")
  if(kind STREQUAL "namespace")
    set(member_kinds "enum|typedef")
  endif()
  while(TRUE)
    string(REGEX MATCH "<memberdef kind=\"(${member_kinds})\"" found "${text}")
    if(NOT found)
      break()
    endif()
    string(FIND "${text}" "${found}" begin)
    string(SUBSTRING "${text}" ${begin} -1 text)
    string(FIND "${text}" "</memberdef>" end)
    string(SUBSTRING "${text}" 0 ${end} member)
    string(SUBSTRING "${text}" ${end} -1 text)
    if(NOT member MATCHES "^<memberdef [^>]*prot=\"public\"")
      continue()
    endif()
    string(REGEX MATCH "<qualifiedname>[^<]*</qualifiedname>" member_name "${member}")
    string(REGEX REPLACE "</?qualifiedname>" "" member_name "${member_name}")
    readable(member_name "${member_name}")
    string(REGEX REPLACE "^<memberdef kind=\"([a-z]+)\"$" "\\1" member_kind "${found}")
    is_public(public "${member_name}")
    if(NOT public)
      continue()
    endif()
    # An enum's values (each with a brief of its own) come before its brief.
    string(REGEX REPLACE "<enumvalue .*</enumvalue>" "" member "${member}")
    has_brief(ok "${member}")
    math(EXPR checked "${checked} + 1")
    if(NOT ok)
      list(APPEND missing "${member_kind} ${member_name}")
    endif()
  endwhile()
endforeach()

set(pending_seen)
set(failing)
foreach(entity IN LISTS missing)
  if(entity IN_LIST PENDING)
    list(APPEND pending_seen "${entity}")
  else()
    list(APPEND failing "${entity}")
  endif()
endforeach()
set(done)
foreach(entity IN LISTS PENDING)
  if(NOT entity IN_LIST pending_seen)
    list(APPEND done "${entity}")
  endif()
endforeach()
if(pending_seen)
  list(LENGTH pending_seen pending_count)
  list(JOIN pending_seen "\n  " shown)
  message(STATUS "check_briefs: ${pending_count} entities still without a brief (pending):\n  ${shown}")
endif()
if(done)
  list(JOIN done "\n  " shown)
  message(FATAL_ERROR "check_briefs: these have a brief now (or are gone); remove them from PENDING:\n  ${shown}")
endif()

list(LENGTH failing missing_count)
set(missing ${failing})
if(missing_count GREATER 0)
  list(SORT missing)
  list(JOIN missing "\n  " report)
  message(FATAL_ERROR "check_briefs: ${missing_count} of ${checked} public entities have no brief "
                      "(a `///` comment above the declaration, or `@file` for a header):\n  ${report}")
endif()
if(checked EQUAL 0)
  message(FATAL_ERROR "check_briefs: found nothing to check in ${XML_DIR}")
endif()
list(LENGTH pending_seen pending_count)
math(EXPR with_brief "${checked} - ${pending_count}")
message(STATUS "check_briefs: ${with_brief} of ${checked} public files, namespaces, types and aliases have a brief; "
               "${pending_count} pending")
