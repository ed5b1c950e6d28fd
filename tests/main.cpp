// Catch2's main for the deblur_tests executable.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
