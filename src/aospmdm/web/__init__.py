"""The console shell: layout templates, stylesheet, sign-in and navigation."""
