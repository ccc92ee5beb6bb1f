// Unit check of the library's UTF-8 check (every boundary of RFC 3629 on both sides)
// and repair (one U+FFFD per maximal subpart), as the CLI and the chat use them.
#include <broadcaster/utf8.hpp>

#include <cstdio>
#include <string>
#include <string_view>

namespace {

int failures = 0;

void expect_repaired(std::string_view bytes, std::string_view repaired) {
    if (broadcaster::to_valid_utf8(bytes) != repaired) {
        std::fprintf(stderr, "to_valid_utf8(%.*s) is wrong\n", static_cast<int>(bytes.size()),
                     bytes.data());
        ++failures;
    }
}

void expect(std::string_view bytes, bool valid) {
    if (broadcaster::is_valid_utf8(bytes) != valid) {
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

    // Repair: well-formed text unchanged; each maximal subpart of an ill-formed
    // sequence becomes one U+FFFD (Unicode 15, table 3-8).
    const std::string r = "\xef\xbf\xbd";
    expect_repaired("h\xc3\xa9llo", "h\xc3\xa9llo");
    expect_repaired("bad\xff", "bad" + r);
    expect_repaired("\xed\xa0\x80", r + r + r);  // a surrogate: each byte
    expect_repaired("\xe2\x82", r);              // truncated: one
    expect_repaired("\xf0\x9f\x98(", r + "(");
    expect_repaired("\xc0\x80", r + r);
    expect_repaired(
        "a\x80\x80"
        "b",
        "a" + r + r + "b");
    if (!broadcaster::is_valid_utf8(broadcaster::to_valid_utf8("\xf1\x80"
                                                               "A\xff\xe0\xa0"))) {
        std::fputs("to_valid_utf8 left ill-formed bytes\n", stderr);
        ++failures;
    }

    if (failures == 0) {
        std::puts("utf8: all checks passed");
    }
    return failures == 0 ? 0 : 1;
}
