//! Test support shared by the Fleetcast test suites.
