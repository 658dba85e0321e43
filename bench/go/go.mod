module ctxtree/bench/go

go 1.19
