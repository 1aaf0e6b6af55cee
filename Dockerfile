# SpeechLM Playground: the same app as the quickstart, in a container.
#   CPU:   docker build -t speechlm .                 && docker run --network host speechlm
#   CUDA:  docker build -t speechlm --build-arg REQUIREMENTS=requirements-cuda.txt . \
#          && docker run --gpus all --network host speechlm
#   ROCm:  docker build -t speechlm --build-arg REQUIREMENTS=requirements-rocm.txt . \
#          && docker run --device /dev/kfd --device /dev/dri --group-add video --network host speechlm
# WebRTC media flows over UDP on random ports: use host networking, or set SPEECHLM_TURN_* (README).
FROM python:3.11-slim

ARG REQUIREMENTS=requirements.txt
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    SPEECHLM_CACHE=/data/cache

# libsndfile for soundfile, espeak-ng for the weight-free TTS fallback, build tools for source-only wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 espeak-ng build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements*.txt ./
RUN pip install -r "$REQUIREMENTS"
COPY app.py pyproject.toml ./
COPY configs ./configs
COPY speechlm_demo ./speechlm_demo

RUN useradd --create-home --uid 1000 app && mkdir -p /data && chown app /data
USER app
VOLUME /data
EXPOSE 7860
CMD ["python", "app.py"]
