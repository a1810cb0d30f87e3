.PHONY: test vet build demo

# make test is what CI runs (.ci/run): vet, then every test with the race detector.
test: vet
	go test -race -count=1 -timeout 15m ./...

vet:
	go vet ./...

build:
	go build -o bin/banyan ./cmd/banyan

demo:
	go run ./cmd/banyan demo
