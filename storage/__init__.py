"""Every SQL statement of cl-hive lives in this package."""
