# cmake -DSCDOC=scdoc -DVERSION=X.Y.Z -DSRC=page.N.scd -DOUT=page.N -P render-man.cmake
# Puts the project's version into the page's header line, then renders it with scdoc.
# scdoc dates the page from SOURCE_DATE_EPOCH when it is set (reproducible builds).
file(READ ${SRC} text)
string(REPLACE "@PROJECT_VERSION@" "${VERSION}" text "${text}")
get_filename_component(dir ${OUT} DIRECTORY)
file(MAKE_DIRECTORY ${dir})
file(WRITE ${OUT}.scd "${text}")
execute_process(COMMAND ${SCDOC} INPUT_FILE ${OUT}.scd OUTPUT_FILE ${OUT}.tmp
                ERROR_VARIABLE errors RESULT_VARIABLE status)
file(REMOVE ${OUT}.scd)
if(NOT status EQUAL 0)
  file(REMOVE ${OUT}.tmp)
  message(FATAL_ERROR "scdoc ${SRC}: ${errors}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
