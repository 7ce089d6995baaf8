"""Policy pages: public texts, versions and client acknowledgements."""
