# smv_library(NAME SOURCES ... HEADERS ... [DEPS ...] [PRIVATE_DEPS ...])
#
# One static library smv_<NAME> (alias smv::<NAME>) whose only include root is a staged folder
# holding links to exactly its HEADERS (paths from the project root, included as written:
# "ipam/pool.h"). A target sees its own headers and those of what it links, nothing else, so an
# include that goes against the dependency graph fails to compile instead of silently working.
function(smv_library NAME)
  cmake_parse_arguments(L "" "" "SOURCES;HEADERS;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target smv_${NAME})
  set(stage ${PROJECT_BINARY_DIR}/include/${target})
  foreach(header IN LISTS L_HEADERS)
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/${header})
    get_filename_component(dir ${stage}/${rel} DIRECTORY)
    file(MAKE_DIRECTORY ${dir})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${rel} ${stage}/${rel} SYMBOLIC)
  endforeach()
  if(L_SOURCES)
    add_library(${target} STATIC ${L_SOURCES})
    target_include_directories(${target} PUBLIC ${stage})
    target_link_libraries(${target} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS} smv_warnings)
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${stage})
    target_link_libraries(${target} INTERFACE ${L_DEPS})
  endif()
  add_library(smv::${NAME} ALIAS ${target})
endfunction()
