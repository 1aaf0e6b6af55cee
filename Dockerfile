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
    SPEECHLM_CACHE=/data/cache \
    SPEECHLM_DATA_DIR=/data

# libsndfile for soundfile, espeak-ng for the weight-free TTS fallback, build tools for source-only wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 espeak-ng build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements*.txt ./
# llama-cpp-python compiles here (AVX2/FMA build: x86-64 CPUs from ~2015 on; drop the flags for older ones).
ARG CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
RUN CMAKE_ARGS="$CMAKE_ARGS" pip install -r "$REQUIREMENTS" \
    && pip install --no-deps -r requirements-nodeps.txt
COPY app.py pyproject.toml ./
COPY configs ./configs
COPY speechlm_demo ./speechlm_demo

RUN useradd --create-home --uid 1000 app && mkdir -p /data && chown app /data
USER app
VOLUME /data
EXPOSE 7860
CMD ["python", "app.py"]
