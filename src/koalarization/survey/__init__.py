"""The real-vs-fake user study: build a survey set from a run (`build`), serve it to participants (`app`, `server`),
export the answers joined with the truth (`export`) and tabulate them against the paper's figures (`tabulate`).

The web app needs the `survey` extra (`pip install koalarization[survey]`: FastAPI, uvicorn, python-multipart);
building, exporting and tabulating do not. The protocol is in user_study/PROTOCOL.md.
"""
