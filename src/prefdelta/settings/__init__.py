"""Config sections, one module per stage (owned with that stage); composed in prefdelta.config."""
