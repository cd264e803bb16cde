"""The Streamlit app: `harness app` runs app/main.py. Reads only through harness.views."""
