# Parley node image, used by docker-compose.yml. Runs the compiled build, as `npm start` does.
FROM node:20-bookworm
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build
EXPOSE 8080 9090
ENTRYPOINT ["node", "--max-semi-space-size=64", "dist/bin/parleyd.js"]
