#pragma once
// Clean-ups a feature owns and every worker's maintainer runs on its rescue cadence: the feature
// registers its sweep from its own file (the crawl executor's abandoned crawls), so the maintainer
// does not know the feature's statements.
#include <functional>
#include <string>
#include <vector>

#include "db/session.hpp"

namespace docket {

/// One registered clean-up.
struct Sweep {
  std::string event;                     ///< logged at warn with the count when it acted
  std::function<int(db::Session&)> run;  ///< runs on the maintainer's session; how many rows it acted on
};

/// Adds a sweep (at static initialisation, from the feature's file); returns true.
bool register_sweep(Sweep sweep);
/// Every registered sweep, in registration order.
const std::vector<Sweep>& registered_sweeps();

}  // namespace docket
