# Writes a C++ source defining chat::page_html with the bytes of INPUT, so the
# executable carries its page.
file(READ ${INPUT} content HEX)
string(LENGTH "${content}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${content}")
file(WRITE ${OUTPUT}
  "// Generated from index.html by embed.cmake.\n"
  "#include <string_view>\n"
  "namespace chat {\n"
  "namespace { constexpr char bytes[] = {${bytes} 0}; }\n"
  "extern const std::string_view page_html;\n"
  "const std::string_view page_html(bytes, ${size});\n"
  "}\n")
