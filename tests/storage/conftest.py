"""Storage test setup: the contract modules' asserts are rewritten by the suite's root
conftest (tests/conftest.py), since tests outside this folder import them too."""
