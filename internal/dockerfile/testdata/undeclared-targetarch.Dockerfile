# TARGETARCH is used but never declared in the stage: it expands to "".
ARG TARGETARCH
FROM alpine:3.20
RUN wget -O /usr/local/bin/dumb-init \
    https://github.com/Yelp/dumb-init/releases/download/v1.2.5/dumb-init_1.2.5_${TARGETARCH}
ARG TARGETOS
RUN echo "$TARGETOS"
