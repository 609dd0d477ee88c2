#pragma once
// The captured dockerd 20.10 calls the tests replay (tests/fixtures/dockerd-20.10, copied into the
// repository so that a clone alone runs its tests). A missing file or folder is one line naming it.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace smv::testing::fixtures {

inline std::filesystem::path Root() { return std::filesystem::path(SMV_FIXTURES_DIR); }

// The call files of one scenario in arrival order; a test failure naming the path when absent.
inline std::vector<std::filesystem::path> ScenarioFiles(const std::string& scenario) {
  const std::filesystem::path dir = Root() / scenario;
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".json") files.push_back(it->path());
  }
  if (files.empty()) ADD_FAILURE() << "missing fixture: " << dir.string() << " (no call files)";
  std::sort(files.begin(), files.end());
  return files;
}

// One captured call {"endpoint", "request", "response"}; null (and a failure naming the path)
// when the file is missing or not JSON.
inline nlohmann::json Call(const std::filesystem::path& file) {
  const std::filesystem::path path = file.is_absolute() ? file : Root() / file;
  std::ifstream in(path);
  nlohmann::json call = nlohmann::json(nlohmann::json::value_t::discarded);
  if (in) call = nlohmann::json::parse(in, nullptr, false);
  if (call.is_discarded()) {
    ADD_FAILURE() << "missing fixture: " << path.string() << (in ? " (not JSON)" : "");
    return nullptr;
  }
  return call;
}

}  // namespace smv::testing::fixtures
