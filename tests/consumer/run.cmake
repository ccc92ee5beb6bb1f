# Installs the built library into a scratch prefix (the `library` and `development`
# components only, as a package without the chat server and the CLI would), then builds
# and runs the consumer program against it twice: as a CMake project (find_package) and
# with the flags `pkg-config --cflags --libs broadcaster` gives. Also checks that the
# package config finds the backends' libraries without pkg-config, and (static library)
# that a missing one fails the consumer's configure with a message naming its package.
#
# Variables: BUILD_DIR, SOURCE_DIR (this directory), WORK_DIR, GENERATOR.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "failed (${result}): ${ARGV}")
  endif()
endfunction()

function(cache_value var name)
  file(STRINGS ${BUILD_DIR}/CMakeCache.txt line REGEX "^${name}:")
  string(REGEX REPLACE "^[^=]*=" "" line "${line}")
  set(${var} "${line}" PARENT_SCOPE)
endfunction()
foreach(component library development)
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} --component ${component})
endforeach()
if(EXISTS ${prefix}/bin)
  message(FATAL_ERROR "the library and development components installed programs")
endif()
# Public headers include this detail header: it must be installed with them.
if(NOT EXISTS ${prefix}/include/broadcaster/detail/receive_executor.hpp)
  message(FATAL_ERROR "include/broadcaster/detail/receive_executor.hpp was not installed")
endif()
file(GLOB_RECURSE pc_files ${prefix}/*/broadcaster.pc)
list(LENGTH pc_files pc_count)
if(NOT pc_count EQUAL 1)
  message(FATAL_ERROR "expected one installed broadcaster.pc, found: ${pc_files}")
endif()
get_filename_component(pc_dir ${pc_files} DIRECTORY)
get_filename_component(lib_dir ${pc_dir} DIRECTORY)
file(GLOB shared_libs ${lib_dir}/libbroadcaster.so*)

# 1. find_package
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)

# 2. pkg-config, with the compiler the library was built with.
find_program(pkg_config pkg-config REQUIRED)
cache_value(cxx CMAKE_CXX_COMPILER)
execute_process(COMMAND ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${pc_dir}
                        ${pkg_config} --cflags --libs broadcaster
                OUTPUT_VARIABLE pc_flags OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs broadcaster failed (${result})")
endif()
message(STATUS "pkg-config --cflags --libs broadcaster: ${pc_flags}")
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
run(${cxx} -std=c++20 ${SOURCE_DIR}/main.cpp -o ${WORK_DIR}/consumer_pkg_config ${pc_flags})
run(${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${lib_dir} ${WORK_DIR}/consumer_pkg_config)

# OpenSSL and the backends' client libraries, loaded when first used, are no link dependency: neither
# the library nor an app built against it (static or shared) has them as NEEDED, and the
# .pc file does not ask for them.
set(loaded_libraries libssl libcrypto libpq librdkafka libnats)
find_program(readelf readelf REQUIRED)
foreach(binary ${WORK_DIR}/build/consumer ${WORK_DIR}/consumer_pkg_config ${shared_libs})
  execute_process(COMMAND ${readelf} -d ${binary} OUTPUT_VARIABLE dynamic RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "readelf -d ${binary} failed (${result})")
  endif()
  foreach(library ${loaded_libraries})
    if(dynamic MATCHES "NEEDED[^\n]*\\[${library}\\.so")
      message(FATAL_ERROR "${binary} links ${library}, which is loaded when first used")
    endif()
  endforeach()
endforeach()
foreach(library ${loaded_libraries})
  string(REGEX REPLACE "^lib" "" name ${library})
  if(";${pc_flags};" MATCHES ";-l${name};")
    message(FATAL_ERROR "pkg-config --libs broadcaster asks for ${library}: ${pc_flags}")
  endif()
endforeach()

# 3. The package config finds the backends' libraries when pkg-config knows none of them
# (as on a system whose -dev packages ship no .pc files): no REQUIRED pkg-config search
# in the consumer's scope.
set(pkg_config_knows_nothing ${CMAKE_COMMAND} -E env PKG_CONFIG_LIBDIR=${WORK_DIR}/no-pc
                             PKG_CONFIG_PATH=)
run(${pkg_config_knows_nothing} ${CMAKE_COMMAND} -S ${SOURCE_DIR}
    -B ${WORK_DIR}/build_no_pkg_config -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix})

# 4. A static library whose backends need a library the system lacks: the consumer's
# configure fails with a message naming the package to install. Headers in /usr/include
# are hidden from the search (hiredis') and pkg-config knows no module, as on a system
# without those -dev packages.
cache_value(redis BROADCASTER_WITH_REDIS)
set(expected "")
if(redis)
  list(APPEND expected libhiredis-dev)
endif()
if(NOT shared_libs AND expected)
  execute_process(
    COMMAND ${pkg_config_knows_nothing} ${CMAKE_COMMAND} -S ${SOURCE_DIR}
            -B ${WORK_DIR}/build_missing -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix}
            -DCMAKE_IGNORE_PATH=/usr/include
    RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(result EQUAL 0)
    message(FATAL_ERROR "configure succeeded without the backends' headers:\n${out}")
  endif()
  if(NOT out MATCHES "static broadcaster library was built with backends that need")
    message(FATAL_ERROR "configure failed without naming what is missing:\n${out}")
  endif()
  foreach(package ${expected})
    string(FIND "${out}" "${package}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "the message does not name ${package}:\n${out}")
    endif()
  endforeach()
endif()
