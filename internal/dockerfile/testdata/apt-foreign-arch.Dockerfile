# A legacy image that installs i386/amd64 libraries and builds from source.
FROM ubuntu:22.04
RUN dpkg --add-architecture i386 \
 && apt-get update \
 && apt-get install -y libc6:amd64 libstdc++6:i386 make gcc
COPY . /src
RUN cd /src && ./configure --prefix=/usr && make && make install
