"""The server a tutorial reader writes: the anchor of `benchmarks/serve.py`.

FastAPI, the picture resized the naive way (grey, squashed to 28×28, / 255)
and Keras `model.predict` on each request, under `uvicorn` with its
defaults, as the tutorials show it:

    DIGITS_TUTORIAL_MODEL=run/model.keras uvicorn tutorial_server:app --port 8001

The upload field is `image`, like ours, so both servers take the same body.
"""

import io
import os

import numpy as np
from fastapi import FastAPI, File, UploadFile
from PIL import Image
from tensorflow import keras

app = FastAPI()
model = keras.models.load_model(os.environ["DIGITS_TUTORIAL_MODEL"])


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/predict")
async def predict(image: UploadFile = File(...)):  # noqa: B008 (the article's FastAPI idiom)
    picture = Image.open(io.BytesIO(await image.read())).convert("L").resize((28, 28))
    pixels = np.array(picture).astype("float32") / 255
    prediction = model.predict(pixels.reshape(1, 28, 28), verbose=0)
    return {"digit": int(np.argmax(prediction)), "confidence": float(np.max(prediction))}
