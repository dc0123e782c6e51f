module sockerless/bootstrap

go 1.22
