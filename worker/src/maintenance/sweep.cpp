// The registry of the features' sweeps (maintenance/sweep.hpp).
#include "maintenance/sweep.hpp"

namespace docket {

namespace {
/// A function-local static: registrations run during static initialisation, in any file order.
std::vector<Sweep>& sweeps() {
  static std::vector<Sweep> all;
  return all;
}
}  // namespace

bool register_sweep(Sweep sweep) {
  sweeps().push_back(std::move(sweep));
  return true;
}

const std::vector<Sweep>& registered_sweeps() {
  return sweeps();
}

}  // namespace docket
