#include "test_servers.hpp"
#include "test_support.hpp"
