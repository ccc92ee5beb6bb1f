// Unit check of the CLI's UTF-8 validator: every boundary of RFC 3629 on both sides.
#include "commands.hpp"

#include <cstdio>
#include <string>
#include <string_view>

namespace {

int failures = 0;

void expect(std::string_view bytes, bool valid) {
    if (cli::is_valid_utf8(bytes) != valid) {
        std::string hex;
        for (const unsigned char c : bytes) {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%02x ", c);
            hex += buf;
        }
        std::fprintf(stderr, "is_valid_utf8(%s) should be %s\n", hex.c_str(),
                     valid ? "true" : "false");
        ++failures;
    }
}

}  // namespace

int main() {
    // Well-formed: ASCII, empty, the first and last code point of each length.
    expect("", true);
    expect(std::string("a\0b", 3), true);
    expect("\x7f", true);
    expect("\xc2\x80", true);
    expect("\xdf\xbf", true);
    expect("\xe0\xa0\x80", true);
    expect("\xed\x9f\xbf", true);  // U+D7FF, just below the surrogates
    expect("\xee\x80\x80", true);  // U+E000, just above them
    expect("\xef\xbf\xbf", true);
    expect("\xf0\x90\x80\x80", true);  // U+10000
    expect("\xf4\x8f\xbf\xbf", true);  // U+10FFFF
    expect("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", true);

    // Overlong forms.
    expect("\xc0\x80", false);
    expect("\xc1\xbf", false);
    expect("\xe0\x80\x80", false);
    expect("\xe0\x9f\xbf", false);
    expect("\xf0\x80\x80\x80", false);
    expect("\xf0\x8f\xbf\xbf", false);
    // Surrogates.
    expect("\xed\xa0\x80", false);  // U+D800
    expect("\xed\xbf\xbf", false);  // U+DFFF
    // Above U+10FFFF, and lead bytes that never occur.
    expect("\xf4\x90\x80\x80", false);
    expect("\xf5\x80\x80\x80", false);
    expect("\xf8\x88\x80\x80\x80", false);
    expect("\xff", false);
    // Stray continuation bytes, truncated and interrupted sequences.
    expect("\x80", false);
    expect("a\xbf", false);
    expect("\xc3", false);
    expect("\xe2\x82", false);
    expect("\xf0\x9f\x98", false);
    expect("\xe2\x28\xa1", false);
    expect("\xf0\x9f\x28\x80", false);
    expect("\xf0\x9f\x98\x28", false);
    expect("\xc3\xa9\xc3", false);
    // Cut inside a buffer whose next bytes would complete the sequence: the end is the end.
    expect(std::string_view("\xc3\xa9", 1), false);
    expect(std::string_view("\xe2\x82\xac", 2), false);
    expect(std::string_view("\xf0\x9f\x98\x80", 3), false);

    if (failures == 0) {
        std::puts("utf8: all checks passed");
    }
    return failures == 0 ? 0 : 1;
}
