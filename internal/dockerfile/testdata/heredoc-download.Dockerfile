# syntax=docker/dockerfile:1
FROM ubuntu:24.04
RUN <<EOT
set -eux
apt-get update
apt-get install -y wget
wget -q https://github.com/restic/restic/releases/download/v0.16.4/restic_0.16.4_linux_amd64.bz2
bunzip2 restic_0.16.4_linux_amd64.bz2
EOT
