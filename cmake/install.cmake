# Installation and packaging of jsmalloc, included by the top-level CMakeLists.txt after
# the library targets exist. `cmake --install <build> [--prefix <dir>]` lays out:
#
#   <libdir>/libjsmalloc.so*              jsmalloc::jsmalloc         (replaces malloc, new, ...)
#   <libdir>/libjsmalloc.a                jsmalloc::jsmalloc-static  (same, at link time)
#   <libdir>/libjsmalloc-prefixed.a       jsmalloc::jsmalloc-prefixed (js_* calls only)
#   <libdir>/libjsmalloc-secure.so*, libjsmalloc-secure.a, libjsmalloc-prefixed-secure.a
#                                         the same three, secure (jsmalloc::jsmalloc-secure,
#                                         -secure-static, -prefixed-secure)
#   <bindir>/jsmalloc                     the jsmalloc command (tools/jsmalloc)
#   <mandir>/man1/jsmalloc.1              its man page
#   <includedir>/jsmalloc.h
#   <libdir>/cmake/jsmalloc/              find_package(jsmalloc) config, version and targets
#   <libdir>/pkgconfig/jsmalloc.pc        pkg-config: the shared library
#   <libdir>/pkgconfig/jsmalloc-static.pc pkg-config: the static archive and what it needs
#   <libdir>/pkgconfig/jsmalloc-secure.pc, jsmalloc-secure-static.pc: the same, secure
#
# Components: "runtime" (the shared library alone) and "development" (everything else).
# Every installed path is relative to the prefix, so an install moved elsewhere (or made
# with --prefix) still works: the CMake files locate themselves, and the .pc files derive
# their prefix from ${pcfiledir}.

include(CMakePackageConfigHelpers)

set(JSMALLOC_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/jsmalloc)
set(JSMALLOC_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(TARGETS jsmalloc jsmalloc-static jsmalloc-prefixed
    jsmalloc-secure jsmalloc-secure-static jsmalloc-prefixed-secure
  EXPORT jsmallocTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT runtime
    NAMELINK_COMPONENT development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    COMPONENT runtime)

# The jsmalloc command and its man page (`man jsmalloc`).
install(PROGRAMS ${PROJECT_SOURCE_DIR}/tools/jsmalloc
  DESTINATION ${CMAKE_INSTALL_BINDIR}
  COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/docs/jsmalloc.1
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
  COMPONENT runtime)

install(FILES ${PROJECT_SOURCE_DIR}/include/jsmalloc.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT development)

# ---- CMake package: find_package(jsmalloc) ----
# The targets file defines jsmalloc::jsmalloc, jsmalloc::jsmalloc-static and
# jsmalloc::jsmalloc-prefixed with their usage requirements (include directory,
# Threads::Threads and libdl); for the static archives CMake also records that they are
# C++, so a C program linking one is linked by the C++ driver and gets its runtime.
install(EXPORT jsmallocTargets
  NAMESPACE jsmalloc::
  FILE jsmallocTargets.cmake
  DESTINATION ${JSMALLOC_CMAKE_DIR}
  COMPONENT development)

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/jsmallocConfig.cmake.in
  ${PROJECT_BINARY_DIR}/jsmallocConfig.cmake
  INSTALL_DESTINATION ${JSMALLOC_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR)

# 0.x releases promise nothing across minor versions; from 1.0 on, a major version does.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_jsmalloc_compat SameMinorVersion)
else()
  set(_jsmalloc_compat SameMajorVersion)
endif()
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/jsmallocConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY ${_jsmalloc_compat})
unset(_jsmalloc_compat)

install(FILES
  ${PROJECT_BINARY_DIR}/jsmallocConfig.cmake
  ${PROJECT_BINARY_DIR}/jsmallocConfigVersion.cmake
  DESTINATION ${JSMALLOC_CMAKE_DIR}
  COMPONENT development)

# ---- pkg-config: jsmalloc.pc and jsmalloc-static.pc ----
# pkgconfig/ sits in <libdir>; the prefix is found by climbing from there, so that
# lib/x86_64-linux-gnu (a Debian /usr prefix) works as well as lib.
set(_jsmalloc_pc_up "")
file(TO_CMAKE_PATH "${JSMALLOC_PKGCONFIG_DIR}" _jsmalloc_pc_rel)
string(REPLACE "/" ";" _jsmalloc_pc_parts "${_jsmalloc_pc_rel}")
foreach(_part IN LISTS _jsmalloc_pc_parts)
  if(NOT _part STREQUAL "" AND NOT _part STREQUAL ".")
    string(APPEND _jsmalloc_pc_up "/..")
  endif()
endforeach()
set(JSMALLOC_PC_PREFIX "\${pcfiledir}${_jsmalloc_pc_up}")
unset(_part)
unset(_jsmalloc_pc_up)
unset(_jsmalloc_pc_rel)
unset(_jsmalloc_pc_parts)

# An absolute CMAKE_INSTALL_<dir> is used as given; a relative one hangs off the prefix.
foreach(_dir IN ITEMS LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
    set(JSMALLOC_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
  else()
    set(JSMALLOC_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
  endif()
endforeach()
unset(_dir)

# What a program linking the static archive needs besides it: threads, libdl (empty on
# glibc 2.34 and later, where it is part of libc) and, for operator new/delete, the C++
# runtime (a C program is linked by the C compiler, which does not add it).
set(JSMALLOC_PC_CFLAGS "")
if(JSMALLOC_SECURE)
  set(JSMALLOC_PC_CFLAGS " -DJSMALLOC_SECURE=1")
endif()
set(JSMALLOC_PC_PRIVATE_LIBS "-pthread")
foreach(_lib IN LISTS CMAKE_DL_LIBS)
  string(APPEND JSMALLOC_PC_PRIVATE_LIBS " -l${_lib}")
endforeach()
string(APPEND JSMALLOC_PC_PRIVATE_LIBS " -lstdc++")
unset(_lib)

# The secure library's files are the default ones with the library's name changed.
foreach(_variant IN ITEMS "" "-secure")
  set(JSMALLOC_PC_NAME jsmalloc${_variant})
  foreach(_pc IN ITEMS jsmalloc jsmalloc-static)
    string(REPLACE "jsmalloc" "jsmalloc${_variant}" _out ${_pc})
    configure_file(${CMAKE_CURRENT_LIST_DIR}/${_pc}.pc.in ${PROJECT_BINARY_DIR}/${_out}.pc @ONLY)
    install(FILES ${PROJECT_BINARY_DIR}/${_out}.pc
      DESTINATION ${JSMALLOC_PKGCONFIG_DIR}
      COMPONENT development)
  endforeach()
endforeach()
unset(_pc)
unset(_out)
unset(_variant)
