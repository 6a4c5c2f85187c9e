"""octostore-tui: the Textual dashboard over octostored."""
