"""RTM Explorer: `python app.py`, then open http://127.0.0.1:7860 (`--help` lists the flags).

The Hugging Face Space runs this file too (README front matter: app_file: app.py); there
SPACE_ID is set and the app binds 0.0.0.0. Everything else is in app/launcher.py.
"""

from app.launcher import main

if __name__ == "__main__":
    main()
