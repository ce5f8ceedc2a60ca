# write_if_changed(PATH CONTENT): writes only when the content differs, so a build that did not
# change the embedded sources does not recompile what includes them.
function(write_if_changed path content)
  if(EXISTS "${path}")
    file(READ "${path}" old)
  else()
    set(old "")
  endif()
  if(NOT old STREQUAL content)
    file(WRITE "${path}" "${content}")
  endif()
endfunction()
