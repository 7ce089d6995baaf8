"""Home: sends each role to where it starts."""
