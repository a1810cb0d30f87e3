// Package deploy holds the files that run banyan's demo estate in Docker
// (the repo's docker-compose.yml and Dockerfile use them): MySQL init SQL,
// banyan's config, Envoy's bootstrap and Prometheus' scrape config.
//
// No Docker engine is needed to check them: the tests in this package
// parse docker-compose.yml and check that every image build, mounted
// path, published port, environment variable, host name and scrape target
// refers to something that exists, and that the mounted banyan config
// passes the same validation as `banyan validate`.
package deploy
