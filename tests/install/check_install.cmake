# Run by CTest (install.package) as `cmake -D... -P check_install.cmake`; see CMakeLists.txt.
# Inputs: BUILD_DIR CONFIG WORK_DIR CONSUMER_SOURCE_DIR INSTALL_LIBDIR INSTALL_INCLUDEDIR
#         GENERATOR MAKE_PROGRAM C_COMPILER CXX_COMPILER PKG_CONFIG
cmake_minimum_required(VERSION 3.20)

foreach(_var IN ITEMS BUILD_DIR WORK_DIR CONSUMER_SOURCE_DIR INSTALL_LIBDIR INSTALL_INCLUDEDIR
                      GENERATOR C_COMPILER CXX_COMPILER)
  if("${${_var}}" STREQUAL "")
    message(FATAL_ERROR "check_install.cmake: -D${_var}=... is required")
  endif()
endforeach()

set(PREFIX ${WORK_DIR}/prefix)
if(IS_ABSOLUTE "${INSTALL_LIBDIR}")
  set(LIBDIR ${INSTALL_LIBDIR})
else()
  set(LIBDIR ${PREFIX}/${INSTALL_LIBDIR})
endif()
if(IS_ABSOLUTE "${INSTALL_INCLUDEDIR}")
  set(INCLUDEDIR ${INSTALL_INCLUDEDIR})
else()
  set(INCLUDEDIR ${PREFIX}/${INSTALL_INCLUDEDIR})
endif()

# step(<name> <command...>): runs a command, fails the test with its output if it fails.
# The output is kept in WORK_DIR/<name>.log; STEP_OUTPUT holds it afterwards.
function(step name)
  execute_process(COMMAND ${ARGN}
    WORKING_DIRECTORY ${WORK_DIR}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE out)
  file(WRITE ${WORK_DIR}/${name}.log "${out}")
  if(NOT rc STREQUAL "0")
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "${name} failed (${rc}): ${cmd}\n${out}")
  endif()
  message(STATUS "ok: ${name}")
  set(STEP_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

# run_consumer(<name> <executable>): runs a consumer; it must exit 0 and say it is ok.
function(run_consumer name exe)
  step(${name} ${exe})
  if(NOT STEP_OUTPUT MATCHES "consumer: ok")
    message(FATAL_ERROR "${name}: ${exe} did not report ok:\n${STEP_OUTPUT}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# ---- 1. Install, the way the README says, into an empty prefix ----
set(_config_args)
if(CONFIG)
  set(_config_args --config ${CONFIG})
endif()
step(install ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX} ${_config_args})

foreach(_file IN ITEMS
    ${INCLUDEDIR}/jsmalloc.h
    ${LIBDIR}/libjsmalloc.so
    ${LIBDIR}/libjsmalloc.a
    ${LIBDIR}/libjsmalloc-prefixed.a
    ${LIBDIR}/libjsmalloc-secure.so
    ${LIBDIR}/libjsmalloc-secure.a
    ${LIBDIR}/libjsmalloc-prefixed-secure.a
    ${LIBDIR}/pkgconfig/jsmalloc-secure.pc
    ${LIBDIR}/pkgconfig/jsmalloc-secure-static.pc
    ${LIBDIR}/cmake/jsmalloc/jsmallocConfig.cmake
    ${LIBDIR}/cmake/jsmalloc/jsmallocConfigVersion.cmake
    ${LIBDIR}/cmake/jsmalloc/jsmallocTargets.cmake
    ${LIBDIR}/pkgconfig/jsmalloc.pc
    ${LIBDIR}/pkgconfig/jsmalloc-static.pc
    ${PREFIX}/bin/jsmalloc
    ${PREFIX}/share/man/man1/jsmalloc.1)
  if(NOT EXISTS ${_file})
    message(FATAL_ERROR "cmake --install did not install ${_file}")
  endif()
endforeach()
# The installed command finds the installed library (no JSMALLOC_LIBRARY, no build tree).
find_program(_python3 python3)
if(_python3)
  step(jsmalloc-command ${CMAKE_COMMAND} -E env --unset=JSMALLOC_LIBRARY
    ${_python3} ${PREFIX}/bin/jsmalloc run --stats -- ${CMAKE_COMMAND} -E true)
  if(NOT STEP_OUTPUT MATCHES "jsmalloc")
    message(FATAL_ERROR "jsmalloc run --stats from the prefix printed no statistics: ${STEP_OUTPUT}")
  endif()
endif()

# ---- 2. find_package(jsmalloc), once per target ----
set(_generator_args -G ${GENERATOR})
if(MAKE_PROGRAM)
  list(APPEND _generator_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
foreach(_link IN ITEMS jsmalloc jsmalloc-static jsmalloc-prefixed
                      jsmalloc-secure jsmalloc-secure-static jsmalloc-prefixed-secure)
  set(_build ${WORK_DIR}/cmake-${_link})
  step(configure-${_link} ${CMAKE_COMMAND} ${_generator_args}
    -S ${CONSUMER_SOURCE_DIR} -B ${_build}
    -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_C_COMPILER=${C_COMPILER}
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
    -DCMAKE_PREFIX_PATH=${PREFIX}
    # Only the fresh prefix: never a jsmalloc installed elsewhere on the machine.
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
    -DCONSUMER_LINK=${_link}
    -DCONSUMER_EXPECTED_PREFIX=${PREFIX})
  step(build-${_link} ${CMAKE_COMMAND} --build ${_build})
  run_consumer(run-${_link}-cxx ${_build}/consumer_cxx)
  run_consumer(run-${_link}-c ${_build}/consumer_c)
endforeach()

# ---- 3. pkg-config: a C program, compiled and linked by hand ----
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "pkg-config was not found; it is needed to test jsmalloc.pc")
endif()
set(ENV{PKG_CONFIG_PATH} ${LIBDIR}/pkgconfig)
unset(ENV{PKG_CONFIG_LIBDIR})
unset(ENV{PKG_CONFIG_SYSROOT_DIR})

# The .pc files must locate the fresh prefix (they derive it from their own place).
step(pc-variables ${PKG_CONFIG} --variable=libdir jsmalloc)
string(STRIP "${STEP_OUTPUT}" _pc_libdir)
file(REAL_PATH "${_pc_libdir}" _pc_libdir)
file(REAL_PATH "${LIBDIR}" _libdir)
if(NOT _pc_libdir STREQUAL _libdir)
  message(FATAL_ERROR "jsmalloc.pc gives libdir ${_pc_libdir}, expected ${_libdir}")
endif()
step(pc-version ${PKG_CONFIG} --modversion jsmalloc)
string(STRIP "${STEP_OUTPUT}" _pc_version)
file(STRINGS ${LIBDIR}/cmake/jsmalloc/jsmallocConfigVersion.cmake _version_line
  REGEX "^set\\(PACKAGE_VERSION \"")
if(NOT _version_line MATCHES "\"${_pc_version}\"")
  message(FATAL_ERROR "jsmalloc.pc version ${_pc_version} differs from the CMake package: ${_version_line}")
endif()

foreach(_pc IN ITEMS jsmalloc jsmalloc-static jsmalloc-secure jsmalloc-secure-static)
  step(pkg-config-${_pc} ${PKG_CONFIG} --cflags --libs ${_pc})
  string(STRIP "${STEP_OUTPUT}" _flags)
  separate_arguments(_flags UNIX_COMMAND "${_flags}")
  if(_pc STREQUAL "jsmalloc" OR _pc STREQUAL "jsmalloc-secure")
    # The shared library: found at run time through the rpath, as a user would set it.
    set(_extra -Wl,-rpath,${LIBDIR} -DCONSUMER_JSMALLOC_IN_EXECUTABLE=0)
  else()
    set(_extra -DCONSUMER_JSMALLOC_IN_EXECUTABLE=1)
  endif()
  if(_pc MATCHES "secure")
    list(APPEND _extra -DCONSUMER_SECURE=1)
  endif()
  set(_exe ${WORK_DIR}/pkgconfig-${_pc})
  step(compile-pkgconfig-${_pc} ${C_COMPILER} -O2 -Wall -Wextra -Werror
    ${CONSUMER_SOURCE_DIR}/consumer.c -o ${_exe} ${_extra} ${_flags} -ldl)
  run_consumer(run-pkgconfig-${_pc} ${_exe})
endforeach()

message(STATUS "the installed package works: find_package (shared, static, prefixed; default and secure) and pkg-config (shared, static; both)")
