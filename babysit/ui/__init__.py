"""The Streamlit page and the pieces it draws with."""
