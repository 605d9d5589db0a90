# Parley node image, used by docker-compose.yml.
FROM node:20-bookworm
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev || npm ci
COPY . .
EXPOSE 8080 9090
ENTRYPOINT ["node", "--import", "tsx", "bin/parleyd.ts"]
