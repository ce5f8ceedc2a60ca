// The ctest fixture: `docket_pg_cluster start DIR` before the PostgreSQL suites, `stop DIR` after.
#include <filesystem>
#include <iostream>

#include "pg.hpp"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc != 3) {
    std::cerr << "usage: docket_pg_cluster start|stop DIR\n";
    return 2;
  }
  const std::string what = argv[1];
  const fs::path dir = argv[2];
  try {
    docket::embedded::Cluster cluster(docket::test::test_cluster_options(dir));
    if (what == "start") {
      // A cluster left over from an interrupted run starts clean.
      if (fs::exists(dir)) {
        cluster.stop();
        fs::remove_all(dir);
      }
      docket::test::PgCluster pg(dir, false);
      cluster.start();
      pg.prepare_template();
      std::cout << "test cluster ready: " << cluster.url() << '\n';
      return 0;
    }
    if (what == "stop") {
      cluster.stop();
      fs::remove_all(dir);
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "docket_pg_cluster " << what << ": " << e.what() << '\n';
    return 1;
  }
  std::cerr << "unknown command " << what << '\n';
  return 2;
}
