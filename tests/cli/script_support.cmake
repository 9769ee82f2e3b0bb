# Helpers of the JSON checks that some test groups here run in script mode (`cmake -P group.cmake`,
# PROGRAM set to the glassbox program): each group include()s this file there. CMakeLists.txt does
# not include it as a group of its own.

# Runs `glassbox <arguments...>` and fails the check, showing the program's output, unless it exits
# with status 0.
function(run_glassbox)
  execute_process(COMMAND "${PROGRAM}" ${ARGN} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT status EQUAL 0)
    string(REPLACE ";" " " shown "${ARGN}")
    message(FATAL_ERROR "glassbox ${shown} failed with status ${status}:\n${out}${err}")
  endif()
endfunction()

# A JSON number (fixed or exponent form) as an integer count of 10^-digits, truncated toward zero:
# CMake's math() has integers only. json_number_scaled("-1.5e-3" 6 x) sets x to -1500.
function(json_number_scaled value digits out_var)
  if(NOT value MATCHES "^(-?)([0-9]+)(\\.([0-9]+))?([eE]([-+]?[0-9]+))?$")
    message(FATAL_ERROR "not a number: '${value}'")
  endif()
  set(sign "${CMAKE_MATCH_1}")
  set(mantissa "${CMAKE_MATCH_2}${CMAKE_MATCH_4}")
  string(LENGTH "${CMAKE_MATCH_2}" point)
  set(exponent 0)
  if(CMAKE_MATCH_6)
    string(REGEX REPLACE "^\\+" "" exponent "${CMAKE_MATCH_6}")
  endif()
  math(EXPR point "${point} + ${exponent} + ${digits}")
  string(LENGTH "${mantissa}" n)
  if(point LESS_EQUAL 0)
    set(${out_var} 0 PARENT_SCOPE)
    return()
  elseif(point GREATER_EQUAL n)
    math(EXPR zeros "${point} - ${n}")
    string(REPEAT "0" ${zeros} pad)
    set(mantissa "${mantissa}${pad}")
  else()
    string(SUBSTRING "${mantissa}" 0 ${point} mantissa)
  endif()
  string(REGEX REPLACE "^0+" "" mantissa "${mantissa}")
  if(mantissa STREQUAL "")
    set(mantissa 0)
  endif()
  set(${out_var} "${sign}${mantissa}" PARENT_SCOPE)
endfunction()
