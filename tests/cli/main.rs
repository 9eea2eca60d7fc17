// End-to-end tests of the `zo` binary live here (issue 5).
