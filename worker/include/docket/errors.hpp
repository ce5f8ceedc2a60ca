#pragma once
// The docket::Error hierarchy: every failure a caller can act on has its own type.
// pqxx exceptions never leave src/db/; they are translated into these.
#include <stdexcept>
#include <string>

namespace docket {

/// Base of every error Docket raises.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The caller's input is wrong (bad JSON, empty kind, negative limit...). Nothing was written.
class InvalidInput : public Error {
 public:
  using Error::Error;
};

/// The input is well-formed but too large (args over 1 MiB, body over the API cap).
class TooLarge : public InvalidInput {
 public:
  using InvalidInput::InvalidInput;
};

/// No such job (or crawl).
class NotFound : public Error {
 public:
  using Error::Error;
};

/// The request conflicts with the job's state (cancel a finished job, retry a running one).
class Conflict : public Error {
 public:
  using Error::Error;
};

/// The database is unreachable or restarting; retrying later may succeed.
class Unavailable : public Error {
 public:
  using Error::Error;
};

/// A statement or lock timeout: the database is up but the call could not finish in time (a lock
/// held by another transaction, an overloaded server). Nothing was written; retrying may succeed.
class Timeout : public Unavailable {
 public:
  using Unavailable::Unavailable;
};

/// The database schema is missing, older or newer than this binary: run `docket migrate`.
class SchemaMismatch : public Error {
 public:
  using Error::Error;
};

/// The configuration is invalid; the message says how to fix it.
class ConfigError : public Error {
 public:
  using Error::Error;
};

}  // namespace docket
