"""The rule catalogue: each rule explains or flags one thing about a layout."""
