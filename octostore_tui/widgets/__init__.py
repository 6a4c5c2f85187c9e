"""One widget per module: each takes data through attributes and methods and posts messages up."""
