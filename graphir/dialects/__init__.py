"""Op knowledge per framework domain. Importing a dialect registers its op data with the IR registry."""
