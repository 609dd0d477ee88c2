#pragma once
#include <string>
#include <string_view>

namespace smv {

// `text` as one POSIX shell word, for the commands our messages tell the user to run:
// single-quoted unless it is made of characters no shell reads specially.
std::string ShellWord(std::string_view text);

}  // namespace smv
