"""One module per page, each with render(). (Not `pages/`: Streamlit would turn that folder into its
old file-based navigation and run each module as a script.)"""
