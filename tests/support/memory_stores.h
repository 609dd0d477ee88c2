#pragma once
// Both in-memory stores, for tests that run the IPAM and the driver together.

#include "tests/support/memory_ipam_store.h"
#include "tests/support/memory_network_store.h"
